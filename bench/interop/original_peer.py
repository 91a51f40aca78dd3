"""The original FI-ASockIOCore's end of the streamed-message interop run (see s6-interop-stream.md).

Needs the original on PYTHONPATH (its Add_This_Folder_To_PYTHONPATH folder). Roles:

  original_peer.py send PORT BYTES   connect to asockio on 127.0.0.1:PORT as named client b'original',
                                     send one BYTES-byte message (byte i is i & 0xff) and b'after',
                                     print the answer
  original_peer.py recv PORT         listen on 127.0.0.1:PORT, expect named client b'asockio', receive one
                                     message whole, print its length and sha256, answer b'OK'
"""
import hashlib
import sys
import time

from simple_network.tcp_app_server import (ASockIOCore, Client, ConnectionDirectionRole, ConnectionSettings,
                                           asock_io_core_connect)


def pattern(n):
    return (bytes(range(256)) * (n // 256 + 1))[:n]


def send(port, n):
    core = ASockIOCore(set())
    with asock_io_core_connect(core) as server:
        target = ConnectionSettings(ConnectionDirectionRole.server, ('127.0.0.1', port), b'original')
        peer = server.add_client(Client(target))
        while peer not in server.io_iteration(0.5).newly_connected_expected_clients:
            pass
        payload = pattern(n)
        print('original: sending {} bytes, sha256 {}'.format(n, hashlib.sha256(payload).hexdigest()), flush=True)
        started = time.perf_counter()
        server.send_message_to_client(peer, payload)
        # The original checks a socket for writability only while its output FIFO holds a message
        # (io_iteration, "Is need to check writable sockets"); a message partly written sits outside
        # it, so a send that meets a full socket buffer would stall. A second message keeps it going.
        server.send_message_to_client(peer, b'after')
        while True:
            result = server.io_iteration(0.5)
            if peer in result.clients_have_data_to_read:
                for answer in server.get_messages_from_client(peer):
                    print('original: asockio answered {!r} after {:.3f} s'.format(
                        bytes(answer), time.perf_counter() - started), flush=True)
                return
            if peer in result.clients_with_disconnected_connection:
                sys.exit('original: asockio disconnected before answering')


def recv(port):
    gate = ConnectionSettings(ConnectionDirectionRole.server, ('127.0.0.1', port), b'original server')
    core = ASockIOCore({gate})
    with asock_io_core_connect(core, True) as server:
        peer = server.add_client(Client(ConnectionSettings(ConnectionDirectionRole.client, keyword=b'asockio')))
        print('original: listening on {}'.format(port), flush=True)
        started = None
        while True:
            result = server.io_iteration(0.5)
            if peer in result.newly_connected_expected_clients:
                started = time.perf_counter()
            if peer in result.clients_have_data_to_read:
                for message in server.get_messages_from_client(peer):
                    message = bytes(message)
                    print('original: received one message of {} bytes whole after {:.3f} s, sha256 {}'.format(
                        len(message), time.perf_counter() - started, hashlib.sha256(message).hexdigest()),
                        flush=True)
                    server.send_message_to_client(peer, b'OK')
            if peer in result.clients_with_disconnected_connection:
                return


if __name__ == '__main__':
    if sys.argv[1] == 'send':
        send(int(sys.argv[2]), int(sys.argv[3]))
    else:
        recv(int(sys.argv[2]))
