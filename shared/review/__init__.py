"""The review bridge: low-confidence answers on ``<task>.review`` become Label Studio tasks, and the
reviewers' verdicts come back as ``<task>.feedback`` records that ``slm feedback export`` reads.

- :mod:`shared.review.labelling`: what a Label Studio project, task and verdict look like for each task kind
  (pure functions);
- :mod:`shared.review.label_studio`: the Label Studio REST client;
- :mod:`shared.review.tasks_writer`: review records into Label Studio tasks, idempotent by record id;
- :mod:`shared.review.verdicts`: annotations into feedback records, from webhooks and from a sweep;
- :mod:`shared.review.bridge`: the process (``slm review bridge``) that runs both with its HTTP endpoints.
"""
