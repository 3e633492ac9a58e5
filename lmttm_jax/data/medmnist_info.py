"""The MedMNIST v2 3D datasets as published (medmnist 3.0.2's `INFO`): tasks, label
names, split sizes, download URLs and MD5s.

Facts only, kept here so that the package needs neither `medmnist` nor PyTorch;
`tests/test_data.py` checks them against `medmnist.INFO` when `medmnist` is installed.
Every file lives in Zenodo record 10519652: `<flag>.npz` (28^3) and `<flag>_64.npz`.
"""

URL = "https://zenodo.org/records/10519652/files/{}?download=1"  # {}: a file name

# flag -> (task, label names by class index, {split: N}, {size: MD5})
MEDMNIST3D: dict[str, tuple[str, tuple[str, ...], dict[str, int], dict[int, str]]] = {
    "organmnist3d": (
        "multi-class",
        (
            "liver",
            "kidney-right",
            "kidney-left",
            "femur-right",
            "femur-left",
            "bladder",
            "heart",
            "lung-right",
            "lung-left",
            "spleen",
            "pancreas",
        ),
        {"train": 971, "val": 161, "test": 610},
        {28: "a0c5a1ff56af4f155c46d46fbb45a2fe", 64: "58a2205adf14a9d0a189cb06dc78bf10"},
    ),
    "nodulemnist3d": (
        "binary-class",
        ("benign", "malignant"),
        {"train": 1158, "val": 165, "test": 310},
        {28: "8755a7e9e05a4d9ce80a24c3e7a256f3", 64: "c47c5b7d457bf6332200d2ea6d64ecd8"},
    ),
    "adrenalmnist3d": (
        "binary-class",
        ("normal", "hyperplasia"),
        {"train": 1188, "val": 98, "test": 298},
        {28: "bbd3c5a5576322bc4cdfea780653b1ce", 64: "17721accfe9fb005146a47d33bc54b2f"},
    ),
    "fracturemnist3d": (
        "multi-class",
        ("buckle rib fracture", "nondisplaced rib fracture", "displaced rib fracture"),
        {"train": 1027, "val": 103, "test": 240},
        {28: "6aa7b0143a6b42da40027a9dda61302f", 64: "f01d7e6316aedf4210da0da5b7437b42"},
    ),
    "vesselmnist3d": (
        "binary-class",
        ("vessel", "aneurysm"),
        {"train": 1335, "val": 191, "test": 382},
        {28: "b41fd4f7e7e2feedddb201585ecafa1b", 64: "6bb274a8846e1097066dcd64e2c4520f"},
    ),
    "synapsemnist3d": (
        "binary-class",
        ("inhibitory synapse", "excitatory synapse"),
        {"train": 1230, "val": 177, "test": 352},
        {28: "1235b78a3cd6280881dd7850a78eadb6", 64: "43bd14ebf3af9d3dd072446fedc14d5e"},
    ),
}
