"""Use cases behind the API: validation, ownership, uploads. Raise domain exceptions only."""
