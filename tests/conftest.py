import os

from hypothesis import settings

# Property tests: no deadline (the first call of an op may pay for imports), a bounded example count.
settings.register_profile("quick", deadline=None, max_examples=60)
settings.register_profile("thorough", deadline=None, max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "quick"))
