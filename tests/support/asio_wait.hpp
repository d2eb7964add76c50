#pragma once
// Waiting on an Asio event loop in tests.

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <functional>

namespace agentlock::test {

/// Runs `io` in small steps until `pred` holds (true) or `timeout` passes (false).
inline bool run_until(boost::asio::io_context& io, const std::function<bool()>& pred,
                      std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!pred()) {
        if (std::chrono::steady_clock::now() > deadline) {
            return false;
        }
        io.restart();
        io.run_for(std::chrono::milliseconds(10));
    }
    return true;
}

} // namespace agentlock::test
