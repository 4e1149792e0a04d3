//! kustomize-controller: builds a Kustomization from its source artifact with the native
//! kustomize engine, substitutes variables, applies the result with server-side apply,
//! prunes what left, waits for health, and reports status the way Flux does.
//!
//! `build` holds the pure pipeline (also used by `ferroflux build kustomization`).

pub mod build;
pub mod cache;
pub mod cmd;
pub mod dependency;
pub mod envsubst;
pub mod generator;
pub mod health;
pub mod history;
pub mod postbuild;
pub mod reconcile;
pub mod watches;
