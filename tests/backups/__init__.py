"""Tests of the backups part: journal, snapshots, encryption, restore."""
