"""Members as the community knows them: a projection of `member.*` and `tier.changed` events,
plus what the community decides itself (reputation, trust level, suspension)."""
