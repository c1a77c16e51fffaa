"""The Spark backfill runtime: the driver (:mod:`.job`, :mod:`.main`) and what runs in
each task (:mod:`.task`, :mod:`.convert`), shipped to the executors inside the pipeline's
artifact."""
