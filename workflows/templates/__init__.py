"""Template graphs and manifests (data; a package so wheels ship the files)."""
