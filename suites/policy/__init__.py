"""Suite package: the policy's own promises (the policy as data, --policy FILE)."""
