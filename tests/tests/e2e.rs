//! End-to-end tests of real `minga` processes on loopback, compiled as one test binary.

mod e2e {
    mod api;
    mod blobs;
    mod browser;
    mod bundles;
    mod cli;
    mod crash;
    mod hostile;
    mod http_guard;
    mod mdns;
    mod network;
    mod privacy;
    mod real_stack;
    mod search;
    mod web;
}
