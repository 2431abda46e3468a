"""The web viewer (`roistream web`): pages for operators and analysts over the cloud's public gRPC API.

It holds one query token and talks to the cloud only through `cloud.client.CloudClient`, the same
client analytics scripts use, so it works against one node or a cluster behind one address. It never
holds decryption keys: encrypted groups are shown as locked. docs/web.md describes the pages.
"""
