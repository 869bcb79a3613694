"""Transports for the owner -> worker PushTasks stream (every other service is gRPC).

``base.get()`` picks one by ``EMBER_PUSH_TRANSPORT`` (``framed``, the default,
or ``grpc``); see base.py for the interface, grpc_stream.py and framed.py for
the two implementations, frames.py for the framed wire format.
"""
