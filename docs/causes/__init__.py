"""The cause pages' prose, shipped as package data (seatrials.pages) so that an installed seatrials renders them."""
