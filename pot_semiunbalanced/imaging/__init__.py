"""Image restoration with optimal-transport patch priors."""
