"""edgeml: from a jet-tagging network to an FPGA-ready hls4ml project.

Every pipeline stage is a plain function in its own module (``edgeml.data``,
``edgeml.train``, ``edgeml.compress``, ``edgeml.convert``, ``edgeml.simulate``,
``edgeml.estimate``, ``edgeml.report``); the ``edgeml`` command is a thin
click layer over them.
"""

__version__ = "0.1.0"
