#include <agentlock/result.hpp>

#include <cstring>

namespace agentlock {

Error io_error(std::string_view operation, std::string path, int saved_errno) {
    Error e;
    e.kind = ErrorKind::io;
    e.code = std::error_code(saved_errno, std::generic_category());
    e.message = std::string(operation) + " " + path + ": " + std::strerror(saved_errno);
    e.path = std::move(path);
    return e;
}

Error invalid_input(std::string path, std::string message) {
    Error e;
    e.kind = ErrorKind::invalid;
    e.path = std::move(path);
    e.message = std::move(message);
    return e;
}

} // namespace agentlock
