"""The names the closeup world writes into its logs: the closeup ranker's vocabulary.

The simulator and its hybrid logger are closeup-specific; the pipeline reads every name from
the ranker config's `vocabulary`, whose defaults are these.
"""

from ranker_assets.config import Vocabulary

CLOSEUP = Vocabulary()
EVENT_TYPES: tuple[str, ...] = CLOSEUP.event_types
PLATFORMS: tuple[str, ...] = CLOSEUP.platforms or ()
CONTENT_TYPES: tuple[str, ...] = CLOSEUP.content_types or ()
POLICIES: tuple[str, ...] = CLOSEUP.policies
