from protocols.proto import message_pb2 as _message_pb2
from protocols.proto import onchain_event_pb2 as _onchain_event_pb2
from protocols.proto import hub_event_pb2 as _hub_event_pb2
from protocols.proto import request_response_pb2 as _request_response_pb2
from google.protobuf import descriptor as _descriptor
from typing import ClassVar as _ClassVar

DESCRIPTOR: _descriptor.FileDescriptor
