"""Programs that run inside node namespaces, one process per role. They never touch the fabric."""
