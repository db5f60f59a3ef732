#pragma once

namespace katy::runtime {

// Blocks SIGTERM, SIGINT and SIGHUP (and ignores SIGPIPE) in the calling thread. Call it
// first thing in main(), before any thread starts, so that every thread inherits the mask and
// the signals are only ever taken by WaitForSignal.
void BlockSignals();

// Waits on the calling thread for SIGTERM, SIGINT or SIGHUP and returns which one came.
int WaitForSignal();

// Asks this process to shut down gracefully, exactly as SIGTERM would (Control.Drain).
void RequestShutdown();

// After a stop signal: starts a thread that exits the process at once (status 130) on a second
// SIGTERM/SIGINT, so an operator can cut a slow drain short.
void ExitOnSecondSignal();

}  // namespace katy::runtime
