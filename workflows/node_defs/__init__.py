"""Node definitions of custom packs the templates use (data; a package so wheels ship it)."""
