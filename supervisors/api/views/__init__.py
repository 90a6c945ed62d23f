"""The API's views, one module per area; thin layers over supervisors.services."""
