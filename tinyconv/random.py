"""The engine's random state (dropout masks, weight init), seedable and checkpointable."""
import numpy as np

_rng = np.random.default_rng()


def manual_seed(seed):
    """Seed every random draw tinyconv makes (initialisation, dropout)."""
    global _rng
    _rng = np.random.default_rng(seed)


def generator():
    """The numpy Generator tinyconv draws from."""
    return _rng


def get_rng_state():
    """A JSON-friendly snapshot of the generator (for exact resume)."""
    return _rng.bit_generator.state


def set_rng_state(state):
    _rng.bit_generator.state = state
