"""Wire formats and pure rules of Stateless Hub: no I/O, no trio, no disk.

Subpackages: `proto` (generated protobuf code), `messages` (hashing, signing, validation),
`crdt` (merge rules and the message store over an abstract key-value interface).
"""
