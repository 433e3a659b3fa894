"""3FS-style storage over real sockets: a meta service, storage services with CRAQ chains,
and a client with batch I/O and request-to-send incast control (paper section VI-B).

Facts carried over from 3FS (the design, not its code): files are split into
fixed-size chunks; a file is striped over k chains taken from a chain table at an
offset, chunk i on chain i mod k; a chain is an ordered list of targets on
different storage nodes; writes enter at the head, travel to the tail as a
pending version, the tail commits and the acknowledgement travels back (CRAQ);
reads go to any replica, and one holding only a pending version says so; with
request-to-send, a storage service that has read the data asks the client for
permission to transmit, and the client grants a bounded number at once.
"""
