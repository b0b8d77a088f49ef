"""Activity points: awards for what members do elsewhere (posts, reviews, a completed profile,
a birthday), by the brand's `activity` earning rules. See `services.rewards.activity.service`."""
