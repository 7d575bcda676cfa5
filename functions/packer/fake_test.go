package packer

import "github.com/fsouza/fake-gcs-server/fakestorage"

var fakeListAll = fakestorage.ListOptions{}
