"""Danbooru2020 metadata shards -> one typed, deduplicated Parquet table, in four jobs:
reading the inputs (`read`: shards, compressed files, archives, damage), parsing JSON lines
(`parse`), normalising Danbooru's conventions into typed columns (`normalize`), and keeping
one row per post id (`dedupe`); `table` runs them for the metadata stage.
"""
