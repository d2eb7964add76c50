#include <agentlock/fd.hpp>

#include <unistd.h>

namespace agentlock {

void Fd::reset(int fd) {
    if (m_fd >= 0) {
        // close() errors on a descriptor we only read or that was already synced are not
        // actionable; the fd is released either way on Linux.
        (void)::close(m_fd);
    }
    m_fd = fd;
}

} // namespace agentlock
