// A TCP port on 127.0.0.1 that nothing listens on right now, for a test's own server (s3proxy):
// tests run several at a time (CI runs the unit and integration tiers 2 at once), so none may
// use a fixed port. The kernel picks it (bind to port 0); it is free when this returns, and a
// caller whose server then finds it taken picks again.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stdexcept>

namespace kcron::testing {

inline int free_local_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("free_local_port: socket() failed");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof(address);
  // NOLINTBEGIN(cppcoreguidelines-pro-type-reinterpret-cast): the sockets API takes a sockaddr*
  const bool bound = ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
                     ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0;
  // NOLINTEND(cppcoreguidelines-pro-type-reinterpret-cast)
  ::close(fd);
  if (!bound) throw std::runtime_error("free_local_port: bind() to 127.0.0.1:0 failed");
  return ntohs(address.sin_port);
}

}  // namespace kcron::testing
