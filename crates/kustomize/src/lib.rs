//! Native `kustomize build`.
