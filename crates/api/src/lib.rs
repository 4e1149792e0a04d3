//! Flux v2 API types for ferroflux: every kind Flux v2.9 serves, with the same group,
//! version, fields, defaults and validations, plus the defaults Flux keeps in code and
//! the names (labels, annotations, finalizer, field managers) it fixes by convention.
//! Pure: no I/O.

// kube-derive's `printcolumn(type_ = ...)` repeats the same key in each column, which
// clippy mistakes for duplicated attributes.
#![allow(clippy::duplicated_attributes)]

pub mod constants;
pub mod crds;
pub mod duration;
pub mod helmrelease;
pub mod kustomization;
pub mod meta;
pub mod notification;
pub mod source;
