"""Alignment modules (one per file), each registered in ALIGN_MODULES by decorator."""
