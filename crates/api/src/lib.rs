//! Flux v2 API types.
