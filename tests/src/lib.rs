//! Test-bed support for the integration and end-to-end suites.
