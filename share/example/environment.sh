# Variables for the app; secrets belong in ~/environment.sh on the server.
export GREETING="Hello"
