"""Linked Memory Token Turing Machine (LMTTM) for 3D volumes, in JAX/Flax."""

# Below this address space (`ulimit -v`) JAX's CPU runtime aborts while it loads.
MIN_ADDRESS_SPACE = 2 << 30


def _check_address_space() -> None:
    """One line and exit 1 where `ulimit -v` leaves too little for JAX to start (it
    would abort with `std::bad_alloc` on import)."""
    try:
        import resource
    except ImportError:  # not on Windows
        return
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY and soft < MIN_ADDRESS_SPACE:
        raise SystemExit(
            f"error: the address space is limited to {soft >> 20} MiB (ulimit -v); JAX "
            f"needs at least {MIN_ADDRESS_SPACE >> 20} MiB to start and a training several "
            f"GiB: raise the limit (ulimit -v unlimited)"
        )


_check_address_space()
