"""``shopguide guide``: the shopping guide's own process beside the workers.

It follows the catalog, reviews and sentiment topics into the knowledge library (``guide``), answers
shoppers' questions over HTTP (``POST /ask``) and Kafka (``shopguide.questions``), drafts replies to
negative reviews, and serves the shopper's page: a live feed of the shopper's recommendations over
server-sent events, item pages, actions published as clicks, and the ask box. Pure parts (sessions,
feed hub, shelf, gaps, drafting) know nothing of aiohttp or Kafka and are tested directly.
"""
