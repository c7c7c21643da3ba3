"""Running a protocol on a device: engine settings, the batch loop, the run and its report."""
