"""``python -m edgeml.compress.hgq_worker JOB OUT``: one HGQ restart trained for ``train_hgq_recipes``."""

import sys

from edgeml.compress.hgq import fit_in_this_process

if __name__ == "__main__":
    fit_in_this_process(sys.argv[1], sys.argv[2])
