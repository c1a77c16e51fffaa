"""The Pulumi program: stack config -> validated PipelineSpecs -> one component per pipeline.

Nothing else happens here, so the program runs unchanged under ``pulumi.runtime.set_mocks``.
"""

import pulumi

from components import deploy

deploy(pulumi.Config("headwater"))
