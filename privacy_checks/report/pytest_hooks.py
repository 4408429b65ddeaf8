"""pytest hooks for the reports (Allure defaults, compliance report, waivers, JUnit mapping)."""
