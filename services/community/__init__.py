"""The community service: posts, reviews, groups, prompts and challenges, experiences and
moderation — where members talk to each other and to the brand."""
