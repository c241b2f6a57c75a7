"""Offline bundles for air-gapped GPU servers: on a machine with a package index, everything a target needs (given
its Python, its platform and what it already has, such as its CUDA torch), resolved, downloaded, checked and cut
into parts; on the target, an install step that verifies every hash and installs with no index (docs/deploy.md)."""
