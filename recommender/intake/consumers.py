"""The recommender's intake: the consumer groups that turn other services' events into its own
store (services change each other only through events; no worker reads another's API).

- `recommender.interactions`: what members did (rewards and community), weighted;
- `recommender.catalog`: what can be recommended, and the facts serving filters on;
- `recommender.members`: what is known of members besides (members and rewards), and erasure.

Three groups rather than one: each reads at its own pace, and a burst of one kind (a bulk
history's purchases) does not hold up the others.
"""

from __future__ import annotations

from recommender.intake.catalog import CATALOG_CONSUMER
from recommender.intake.interactions import INTERACTIONS_CONSUMER
from recommender.intake.members import MEMBERS_CONSUMER
from services.kernel.consumer import ConsumerSpec

INTAKE_CONSUMERS: tuple[ConsumerSpec, ...] = (
    INTERACTIONS_CONSUMER,
    CATALOG_CONSUMER,
    MEMBERS_CONSUMER,
)
