"""The shared mechanisms every part of the package uses, each defined once (the lowest layer: it imports nothing of
ours above it).

- `atomic`: atomic writes of files and folders, disk-full errors, cleaning up after a killed run;
- `locations`: is a value a local path or a Hub id;
- `output_folders`: output folders claimed by one job configuration, with a resume ledger of finished units, held by
  one live run at a time;
- `processes`: every process of a multi-process run ends with its launcher;
- `images`: decoding any image value to RGB, or the reason it cannot be;
- `devices`: devices and dtypes;
- `options`: the command-line convention (one dataclass per command, `HfArgumentParser`, YAML);
- `errors`: `InputError`, the error for bad input that every command reports the same way.
"""
