"""DTLS 1.2 for DTLS-SRTP (RFC 6347, RFC 5246, RFC 5764), sans-IO, on ``cryptography`` primitives."""
