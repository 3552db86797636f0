"""Storage and data: checkpoints, datasets and their feature store, id files, safe file writes, and
the provenance records (forgotten-id hashes, row fingerprints, pinned user code). Imports only the
package's base modules (errors, config, progress, environment) and itself."""
