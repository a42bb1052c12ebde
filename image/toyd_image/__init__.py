"""Build the toyd Raspberry Pi SD image: config, models, wheels, rootfs, toyd layer, assembly."""
