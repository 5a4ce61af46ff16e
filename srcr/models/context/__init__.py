"""Context modules (one per file), each registered in CONTEXT_MODULES by decorator."""
