"""The oracle's live AWS source: boto3 calls, one small module per concern, and the sync.

Every function here takes a ready boto3 client (built in :mod:`oracle.aws.clients`, the one place
clients are made) and returns plain data; only :mod:`oracle.aws.sync` touches the database, and
never while a network call is in flight.
"""
