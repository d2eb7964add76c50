#pragma once
// Error and result types returned at the library boundary.

#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <variant>

namespace agentlock {

/// What kind of failure a library call hit; callers branch on this.
enum class ErrorKind {
    not_locked,   ///< no lock file exists
    locked,       ///< another live agent (or an unverifiable one) holds the lock
    invalid_lock, ///< the lock file exists but cannot be parsed or is not a regular file
    io,           ///< a system call failed; `code` and `path` say which and where
    invalid,      ///< an input given by the caller (a config, a flag, a path) is not acceptable
};

/// A failure: its kind, the OS error if any, the path involved and a full message.
struct Error {
    ErrorKind kind = ErrorKind::io;
    std::error_code code;
    std::string path;
    std::string message; ///< human text, e.g. "open /w/.runtime/agent.lock: Permission denied"
};

/// Builds an io Error from a saved errno: message reads "<operation> <path>: <strerror>".
Error io_error(std::string_view operation, std::string path, int saved_errno);

/// An `invalid` Error about `path` (a file, a key or a flag); `message` is the whole text.
Error invalid_input(std::string path, std::string message);

/// A value or an Error (std::expected is C++23 only in g++ 12).
template <typename T> class Result {
public:
    Result(T value) : m_v(std::in_place_index<0>, std::move(value)) {}
    Result(Error error) : m_v(std::in_place_index<1>, std::move(error)) {}
    bool ok() const { return m_v.index() == 0; }
    explicit operator bool() const { return ok(); }
    T& value() { return std::get<0>(m_v); }
    const T& value() const { return std::get<0>(m_v); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    T& operator*() { return value(); }
    const T& operator*() const { return value(); }
    const Error& error() const { return std::get<1>(m_v); }

private:
    std::variant<T, Error> m_v;
};

/// Success or an Error, for calls that return nothing.
class Status {
public:
    Status() = default;
    Status(Error error) : m_error(std::move(error)), m_ok(false) {}
    bool ok() const { return m_ok; }
    explicit operator bool() const { return m_ok; }
    const Error& error() const { return m_error; }

private:
    Error m_error;
    bool m_ok = true;
};

} // namespace agentlock
