"""Facts about the MNIST format that every stage shares (one place for each)."""

IMAGE_HEIGHT = 28
IMAGE_WIDTH = 28
NUM_CLASSES = 10

# The four files of every MNIST mirror, by split: (images, labels). Fashion-MNIST uses the same.
SPLIT_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
RAW_FILE_NAMES: tuple[str, ...] = tuple(name for pair in SPLIT_FILES.values() for name in pair)
