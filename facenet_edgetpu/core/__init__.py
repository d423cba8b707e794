"""What every stage run needs: the entry point, params, errors, logging, atomic writes,
the toolchain identity and the runner."""
